"""The Billing API: the authenticated HTTP service (`billing run api`) for operators, tenants
and usage publishers (docs/api.md). Stateless: any number of instances share MongoDB and Kafka.
"""
