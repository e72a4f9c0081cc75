"""MongoDB access through PyMongo's async API (`AsyncMongoClient`).

Times come back timezone-aware (UTC); decimals are stored as `Decimal128`.
"""

from decimal import Decimal
from typing import Any

from bson import Decimal128
from bson.codec_options import CodecOptions, TypeCodec, TypeRegistry
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from services.common.settings import CommonSettings


class DecimalCodec(TypeCodec):
    """Stores `Decimal` as `Decimal128` and reads `Decimal128` back as `Decimal`."""

    python_type = Decimal
    bson_type = Decimal128

    def transform_python(self, value: Decimal) -> Decimal128:
        return Decimal128(value)

    def transform_bson(self, value: Decimal128) -> Decimal:
        return value.to_decimal()


CODEC_OPTIONS: CodecOptions[dict[str, Any]] = CodecOptions(
    tz_aware=True, type_registry=TypeRegistry([DecimalCodec()])
)


def make_client(settings: CommonSettings) -> AsyncMongoClient[dict[str, Any]]:
    """A client for `settings.mongo_uri`; close it with `await client.close()`."""
    return AsyncMongoClient(
        settings.mongo_uri, tz_aware=True, serverSelectionTimeoutMS=10_000, connect=False
    )


def database(
    client: AsyncMongoClient[dict[str, Any]], settings: CommonSettings
) -> AsyncDatabase[dict[str, Any]]:
    """The platform database with the `Decimal` codec and tz-aware datetimes."""
    return client.get_database(settings.mongo_db, codec_options=CODEC_OPTIONS)
