"""Authentication and authorization: tokens, policies, auth-failure throttling."""
