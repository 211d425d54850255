// placeholder until the config tests land
