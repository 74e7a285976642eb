"""The codec server the Temporal UI and CLI use to show encrypted payloads decoded (`/codec`)."""
