"""Pure building blocks: entities, ids, errors, the filter language, settings. No IO."""
