"""microWakeWord's streaming wake-word models: a user's model and its JSON config, checked
against each other (config.py), and the audio stream made into the model's int8 input
blocks (stream.py) by the 10 ms-step front end (tinydrift.frontend)."""
