"""The Textual face. The only package in mnist-workbench that imports Textual."""
