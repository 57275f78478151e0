"""The sae area of interplab."""
