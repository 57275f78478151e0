"""The masks area of interplab."""
