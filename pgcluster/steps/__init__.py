"""The steps deploys are made of, as pyinfra @deploy functions (one module per concern)."""
