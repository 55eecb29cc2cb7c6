"""The maker toolkit: templates for new micro-apps (`orchestrator new`)."""
