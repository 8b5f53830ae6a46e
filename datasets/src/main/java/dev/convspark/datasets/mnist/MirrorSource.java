package dev.convspark.datasets.mnist;

import java.io.IOException;
import java.io.InputStream;
import java.net.HttpURLConnection;
import java.net.URI;
import java.net.URL;
import java.time.Duration;
import java.util.zip.GZIPInputStream;

/**
 * An HTTP(S) mirror that serves each file gzip-compressed under {@code base + name + ".gz"}, as
 * the public MNIST mirrors do. The body is decompressed while it streams in.
 */
public final class MirrorSource implements FileSource {

  private final String base;
  private final Duration connectTimeout;
  private final Duration readTimeout;

  /**
   * @param base           the folder URL, ending in {@code /}
   * @param connectTimeout how long to wait for the connection
   * @param readTimeout    how long any single read may block before the download is abandoned
   */
  public MirrorSource(String base, Duration connectTimeout, Duration readTimeout) {
    if (!base.endsWith("/")) {
      throw new IllegalArgumentException("mirror URL must end with '/' but was '" + base + "'");
    }
    this.base = base;
    this.connectTimeout = connectTimeout;
    this.readTimeout = readTimeout;
  }

  @Override
  public String describe() {
    return base;
  }

  @Override
  public InputStream open(DatasetFile file) throws IOException {
    URL url = URI.create(base + file.gzipName()).toURL();
    HttpURLConnection conn = (HttpURLConnection) url.openConnection();
    conn.setConnectTimeout((int) connectTimeout.toMillis());
    conn.setReadTimeout((int) readTimeout.toMillis());
    conn.setInstanceFollowRedirects(true);
    int code = conn.getResponseCode();
    if (code != HttpURLConnection.HTTP_OK) {
      conn.disconnect();
      throw new IOException("HTTP " + code + " for " + url);
    }
    return new GZIPInputStream(conn.getInputStream(), 1 << 16);
  }

  @Override
  public void close() {
  }
}
