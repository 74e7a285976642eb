"""The public contract of ratio-zoom's appointment workflow (see docs/contract.md)."""
