"""Loopback emulators of the Slack Web API and HubSpot CRM v3 API, shared by tests and the benchmark."""
