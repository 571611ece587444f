"""What gage keeps on disk: the meta dir format (the only module that knows meta file names and encodings), the content-addressed object cache, the digest cache."""
