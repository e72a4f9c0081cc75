"""The API's routers; `services.api.app.create_app` includes each module's `router`."""
