"""Built-in plugins of mnist-workbench, installed as the package ``workbench_plugins``. Each
module is an ordinary pluggy plugin, loaded as a built-in without any registration; a .py file
dropped into a plugin folder (given with --plugins, or beside the experiments file) is loaded
the same way."""
