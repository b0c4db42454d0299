"""Deployment components: export, register, register-gem, promote."""
