"""lowlight3d.pipeline: option loading, data loaders, and the train / test / complexity pipelines."""
