"""The supply chain: its entities (the registry's store), stock cover and routes."""
