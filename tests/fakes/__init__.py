"""In-process fakes of payment providers' HTTP APIs: ``httpx.MockTransport`` handlers, and a
loopback server for the Stripe SDK (``stripe_server``)."""
