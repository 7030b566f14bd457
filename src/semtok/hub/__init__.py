"""Model folders in the Hugging Face hub layout: file names, atomic writes, checked loads, one resolver."""

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
