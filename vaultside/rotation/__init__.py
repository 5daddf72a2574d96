"""Secret rotation: policies, generators, targets, the four-step engine, scheduler, re-delivery."""
