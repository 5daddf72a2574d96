"""Secret delivery into containers: Docker volume plugin, sidecar, admission policy."""
