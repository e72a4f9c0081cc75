"""Export the contracts for downstream teams: one JSON Schema per event and an AsyncAPI 3.0
document naming each topic, its key and the messages it carries."""

import json
from pathlib import Path
from typing import Any

from contracts.events import ALL_EVENTS
from contracts.topics import ALL_TOPICS


def json_schemas() -> dict[str, dict[str, Any]]:
    """Event name -> its JSON Schema (the wire form, `mode="serialization"`)."""
    return {cls.__name__: cls.model_json_schema(mode="serialization") for cls in ALL_EVENTS}


def asyncapi_document() -> dict[str, Any]:
    """An AsyncAPI 3.0 document: one channel per topic, one message per event."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for cls, topic in ALL_EVENTS.items():
        name = cls.__name__
        messages[name] = {
            "name": name,
            "contentType": "application/json",
            "summary": (cls.__doc__ or "").strip().splitlines()[0],
            "bindings": {"kafka": {"key": {"type": "string", "description": "tenant id"}}},
            "payload": {"$ref": f"schemas/{name}.json"},
        }
        channel_id = topic.replace(".", "_").replace("-", "_")
        channel = channels.setdefault(
            channel_id,
            {
                "address": topic,
                "messages": {},
                "bindings": {"kafka": {"partitions": ALL_TOPICS[topic], "replicas": 1}},
            },
        )
        channel["messages"][name] = {"$ref": f"#/components/messages/{name}"}
    for channel_id, channel in channels.items():
        operations[f"receive_{channel_id}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "summary": f"Subscribe to {channel['address']}",
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Billing platform events",
            "version": "1.0.0",
            "description": "Events of the multi-tenant billing platform. Message key: tenant id.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def export(directory: Path) -> list[Path]:
    """Write `schemas/<Event>.json` and `asyncapi.json` under `directory`; returns the paths."""
    schema_dir = directory / "schemas"
    schema_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in json_schemas().items():
        path = schema_dir / f"{name}.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    doc = directory / "asyncapi.json"
    doc.write_text(json.dumps(asyncapi_document(), indent=2) + "\n")
    written.append(doc)
    return written
