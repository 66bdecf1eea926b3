"""Built-in plugins of mnist-workbench. Each module is an ordinary pluggy plugin; a .py file
dropped into this folder (or any folder given with --plugins) is loaded the same way."""
