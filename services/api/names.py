"""Names other parts of the platform use for the API service."""

#: The service name (broker client name, metrics, logs).
SERVICE = "api"
