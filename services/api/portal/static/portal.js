// The portal's only script (optional: every page works without it). A click anywhere on a
// table row marked `data-href` follows the row's link; keyboard users use the link itself.
document.addEventListener("click", (event) => {
  const row = event.target.closest("tr[data-href]");
  if (!row || event.target.closest("a, button, input, select, label")) return;
  window.location.assign(row.dataset.href);
});
