"""Format converters: Keras → TFLite variants, TFLite → TFLite-Micro sources, Edge TPU."""
