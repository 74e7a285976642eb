"""AES-256-GCM encryption of Temporal payloads, and the codec server the Temporal UI and CLI use."""
