"""The API's reads endpoints (placeholder router until they land)."""

from fastapi import APIRouter

router = APIRouter()
