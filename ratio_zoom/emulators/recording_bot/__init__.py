"""A Recall.ai-compatible recording-bot emulator (`ratio-zoom emulate recording-bot`)."""
