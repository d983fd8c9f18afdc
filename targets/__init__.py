"""Built-in target profiles (data only). Installed as `edgekit.profiles`; read them with
`edgekit.load_target` or `edgekit targets list`."""
