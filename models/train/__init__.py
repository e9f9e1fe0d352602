"""Training: the engine (`engine`), one module per task, data loading (`data`), the photo dataset builder
(`photos`)."""
