// Placeholder translation unit; removed when keys/ has sources.
