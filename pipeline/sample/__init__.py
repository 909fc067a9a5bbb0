"""The built-in sample APK (`python -m pipeline.sample`): the builder (builder) and the Unity bundle
editing it clones templates with (bundle_edit)."""
