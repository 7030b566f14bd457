"""Model folders in the Hugging Face hub layout: file names, atomic writes, checked loads (``files``); the one
save/load mechanism and run-folder resolver every model shares (``pretrained``)."""
