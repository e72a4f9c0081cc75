"""The API's ingest endpoints (placeholder router until they land)."""

from fastapi import APIRouter

router = APIRouter()
