"""`python -m services.devstack.stripe_fake --host H --port P --webhook-secret whsec_...`"""

import argparse
import logging

import uvicorn

from services.devstack.stripe_fake.app import create_app


def main(argv: list[str] | None = None) -> None:
    """Serve the fake until interrupted."""
    parser = argparse.ArgumentParser(description="A fake Stripe API for development and tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12111)
    parser.add_argument("--webhook-secret", default="whsec_embedded_dev_secret")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper())
    uvicorn.run(create_app(args.webhook_secret), host=args.host, port=args.port,
                log_level=args.log_level)


if __name__ == "__main__":
    main()
