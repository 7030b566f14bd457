"""Model folders in the Hugging Face hub layout: file names, atomic writes, checked loads."""
