"""The process: settings (ServerSettings, loaded once), flags (generated from the settings),
cli, startup (checks before the model loads), run (serving and draining), metrics."""
