"""hsgate: the human gate between AI agents and HubSpot."""
