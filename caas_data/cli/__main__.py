"""`python -m caas_data.cli`: the same as the `caas-data` command."""

from caas_data.cli.app import main

main()
