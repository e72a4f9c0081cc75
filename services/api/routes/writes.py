"""The API's writes endpoints (placeholder router until they land)."""

from fastapi import APIRouter

router = APIRouter()
