"""The REST API: a thin app factory and one router per resource."""
