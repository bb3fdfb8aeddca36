// Placeholder translation unit; removed when store/ has sources.
