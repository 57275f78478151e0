"""The runs area of interplab."""
