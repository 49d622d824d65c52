"""Training new LoRA modules on the hub: jobs, their pages and their API."""
