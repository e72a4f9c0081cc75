"""The billing portal: server-rendered pages for tenants and operators, served by the Billing
API process under `/portal` (docs/portal.md).

`web` holds what pages share (templates, session dependencies, CSRF), `sessions` the sign-in
records, `routes_auth` the sign-in pages, `routes_tenant` the tenant pages (Invoices, Usage,
Billing) and `routes_admin` the admin console. Pages call the API's own route functions with
the session's principal, so the portal and the API apply the same access rules.
"""
