"""Server plumbing shared by the three services: server creation, health, reflection, auth,
error mapping, metrics, logging, client channels."""
