"""An application whose startup hook and periodic task ask for a service nobody provides."""
