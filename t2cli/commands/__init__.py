"""One module per `t2` command group; importing one registers its commands on `t2cli.common.app`."""
