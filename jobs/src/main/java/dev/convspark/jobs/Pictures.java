package dev.convspark.jobs;

import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Map;
import javax.imageio.ImageIO;

/**
 * The PNG pictures the jobs write: line charts (loss and accuracy curves), a confusion-matrix heat
 * map and a grid of images with captions. Text is drawn with a built-in 5x7 bitmap font, so the
 * pictures need no system fonts and come out the same on every machine.
 */
final class Pictures {

  private Pictures() {
  }

  /** Rows of the 5x7 font, 5 bits each (bit 4 is the left column). Lower case is drawn as upper case. */
  private static final Map<Character, int[]> FONT = Map.ofEntries(
      Map.entry('0', new int[] {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}),
      Map.entry('1', new int[] {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E}),
      Map.entry('2', new int[] {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}),
      Map.entry('3', new int[] {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E}),
      Map.entry('4', new int[] {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}),
      Map.entry('5', new int[] {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E}),
      Map.entry('6', new int[] {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}),
      Map.entry('7', new int[] {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}),
      Map.entry('8', new int[] {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}),
      Map.entry('9', new int[] {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C}),
      Map.entry('A', new int[] {0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11}),
      Map.entry('B', new int[] {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E}),
      Map.entry('C', new int[] {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E}),
      Map.entry('D', new int[] {0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C}),
      Map.entry('E', new int[] {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F}),
      Map.entry('F', new int[] {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10}),
      Map.entry('G', new int[] {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F}),
      Map.entry('H', new int[] {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11}),
      Map.entry('I', new int[] {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E}),
      Map.entry('J', new int[] {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C}),
      Map.entry('K', new int[] {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11}),
      Map.entry('L', new int[] {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F}),
      Map.entry('M', new int[] {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11}),
      Map.entry('N', new int[] {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11}),
      Map.entry('O', new int[] {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}),
      Map.entry('P', new int[] {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10}),
      Map.entry('Q', new int[] {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D}),
      Map.entry('R', new int[] {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11}),
      Map.entry('S', new int[] {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E}),
      Map.entry('T', new int[] {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}),
      Map.entry('U', new int[] {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}),
      Map.entry('V', new int[] {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04}),
      Map.entry('W', new int[] {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A}),
      Map.entry('X', new int[] {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11}),
      Map.entry('Y', new int[] {0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04}),
      Map.entry('Z', new int[] {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F}),
      Map.entry('.', new int[] {0, 0, 0, 0, 0, 0x0C, 0x0C}),
      Map.entry(',', new int[] {0, 0, 0, 0, 0x0C, 0x04, 0x08}),
      Map.entry(':', new int[] {0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0}),
      Map.entry('-', new int[] {0, 0, 0, 0x1F, 0, 0, 0}),
      Map.entry('+', new int[] {0, 0x04, 0x04, 0x1F, 0x04, 0x04, 0}),
      Map.entry('=', new int[] {0, 0, 0x1F, 0, 0x1F, 0, 0}),
      Map.entry('%', new int[] {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03}),
      Map.entry('/', new int[] {0, 0x01, 0x02, 0x04, 0x08, 0x10, 0}),
      Map.entry('(', new int[] {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02}),
      Map.entry(')', new int[] {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08}),
      Map.entry('_', new int[] {0, 0, 0, 0, 0, 0, 0x1F}));

  /** Draws {@code text} with its top-left corner at (x, y), each font pixel {@code scale} pixels wide. */
  static void text(Graphics2D g, String text, int x, int y, int scale) {
    for (char c : text.toUpperCase(Locale.ROOT).toCharArray()) {
      int[] rows = FONT.get(c);
      if (rows != null) {
        for (int r = 0; r < 7; r++) {
          for (int col = 0; col < 5; col++) {
            if ((rows[r] >> (4 - col) & 1) != 0) {
              g.fillRect(x + col * scale, y + r * scale, scale, scale);
            }
          }
        }
      }
      x += 6 * scale;
    }
  }

  /** The width in pixels of {@code text} drawn at {@code scale}. */
  static int textWidth(String text, int scale) {
    return text.length() * 6 * scale;
  }

  private static BufferedImage canvas(int w, int h) {
    BufferedImage img = new BufferedImage(w, h, BufferedImage.TYPE_INT_RGB);
    Graphics2D g = img.createGraphics();
    g.setColor(Color.WHITE);
    g.fillRect(0, 0, w, h);
    g.dispose();
    return img;
  }

  private static void write(BufferedImage img, Path file) throws IOException {
    Path dir = file.toAbsolutePath().getParent();
    Files.createDirectories(dir);
    if (!ImageIO.write(img, "png", file.toFile())) {
      throw new IOException("no PNG writer in this Java runtime (writing " + file + ")");
    }
  }

  /**
   * A line chart of {@code y} over steps 1..n, smoothed by a moving average over {@code window}
   * steps (the raw values in light grey behind it), with labelled axes.
   */
  static void lineChart(Path file, String title, String yLabel, double[] y, int window, int width, int height)
      throws IOException {
    lineChart(file, title, yLabel, y, window, width, height, new int[0], new double[0]);
  }

  /**
   * As above, with a second series drawn over it in orange, a point at each of {@code atSteps}
   * (1-based steps) joined by lines: the validation curve. Both series share the y axis.
   */
  static void lineChart(Path file, String title, String yLabel, double[] y, int window, int width, int height,
                        int[] atSteps, double[] second) throws IOException {
    BufferedImage img = canvas(width, height);
    Graphics2D g = img.createGraphics();
    g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
    int left = 80;
    int right = 20;
    int top = 40;
    int bottom = 50;
    int pw = width - left - right;
    int ph = height - top - bottom;
    double lo = Double.POSITIVE_INFINITY;
    double hi = Double.NEGATIVE_INFINITY;
    for (double[] series : new double[][] {y, second}) {
      for (double v : series) {
        if (Double.isFinite(v)) {
          lo = Math.min(lo, v);
          hi = Math.max(hi, v);
        }
      }
    }
    if (!(lo <= hi)) {
      lo = 0;
      hi = 1;
    }
    if (hi - lo < 1e-12) {
      hi = lo + 1;
    }
    g.setColor(Color.BLACK);
    text(g, title, left, 6, 2);
    g.drawRect(left, top, pw, ph);
    for (int t = 0; t <= 4; t++) {
      double v = lo + (hi - lo) * t / 4;
      int py = top + ph - (int) Math.round(ph * (double) t / 4);
      g.setColor(new Color(230, 230, 230));
      g.drawLine(left + 1, py, left + pw - 1, py);
      g.setColor(Color.BLACK);
      String s = String.format(Locale.ROOT, Math.abs(hi) >= 100 ? "%.0f" : "%.3f", v);
      text(g, s, left - 6 - textWidth(s, 1), py - 3, 1);
    }
    int n = y.length;
    for (int t = 0; t <= 4; t++) {
      int step = (int) Math.round(Math.max(1, n) * (double) t / 4);
      String s = Integer.toString(step);
      int px = left + (int) Math.round(pw * (double) t / 4);
      text(g, s, px - textWidth(s, 1) / 2, top + ph + 6, 1);
    }
    text(g, "step", left + pw / 2 - textWidth("step", 2) / 2, height - 20, 2);
    text(g, yLabel, 6, top - 11, 1);
    if (n > 0) {
      int[] xs = new int[n];
      int[] raw = new int[n];
      int[] smooth = new int[n];
      double sum = 0;
      int w = Math.max(1, window);
      for (int i = 0; i < n; i++) {
        double v = Double.isFinite(y[i]) ? y[i] : hi;
        sum += v;
        if (i >= w) {
          sum -= Double.isFinite(y[i - w]) ? y[i - w] : hi;
        }
        double avg = sum / Math.min(i + 1, w);
        xs[i] = left + (n == 1 ? pw / 2 : (int) Math.round(pw * (double) i / (n - 1)));
        raw[i] = top + ph - (int) Math.round(ph * (v - lo) / (hi - lo));
        smooth[i] = top + ph - (int) Math.round(ph * (avg - lo) / (hi - lo));
      }
      g.setColor(new Color(190, 200, 225));
      g.drawPolyline(xs, raw, n);
      g.setColor(new Color(20, 60, 170));
      g.setStroke(new BasicStroke(2f));
      g.drawPolyline(xs, smooth, n);
    }
    if (second.length > 0 && n > 0) {
      int[] px = new int[second.length];
      int[] py = new int[second.length];
      for (int i = 0; i < second.length; i++) {
        double v = Double.isFinite(second[i]) ? second[i] : hi;
        px[i] = left + (n == 1 ? pw / 2 : (int) Math.round(pw * (double) (atSteps[i] - 1) / (n - 1)));
        py[i] = top + ph - (int) Math.round(ph * (v - lo) / (hi - lo));
      }
      Color orange = new Color(230, 120, 20);
      g.setColor(orange);
      g.drawPolyline(px, py, second.length);
      for (int i = 0; i < second.length; i++) {
        g.fillOval(px[i] - 3, py[i] - 3, 7, 7);
      }
      String legend = "training";
      int lx = left + pw - textWidth(legend, 1) - textWidth("  validation", 1) - 30;
      g.setColor(new Color(20, 60, 170));
      text(g, legend, lx, top - 11, 1);
      g.setColor(orange);
      text(g, "validation", lx + textWidth(legend + "  ", 1) + 10, top - 11, 1);
    }
    g.dispose();
    write(img, file);
  }

  /** A heat map of a confusion matrix (rows: true class, columns: predicted), with the counts written in. */
  static void confusionMatrix(Path file, long[][] counts) throws IOException {
    int k = counts.length;
    int cell = Math.max(24, Math.min(56, 560 / Math.max(1, k)));
    int left = 70;
    int top = 70;
    int width = left + k * cell + 20;
    int height = top + k * cell + 40;
    BufferedImage img = canvas(width, height);
    Graphics2D g = img.createGraphics();
    long max = 1;
    for (long[] row : counts) {
      for (long c : row) {
        max = Math.max(max, c);
      }
    }
    g.setColor(Color.BLACK);
    text(g, "confusion matrix", left, 10, 2);
    text(g, "predicted", left + k * cell / 2 - textWidth("predicted", 1) / 2, 36, 1);
    text(g, "true", 8, top + k * cell / 2 - 3, 1);
    for (int i = 0; i < k; i++) {
      String s = Integer.toString(i);
      text(g, s, left + i * cell + cell / 2 - textWidth(s, 1) / 2, top - 14, 1);
      text(g, s, left - 10 - textWidth(s, 1), top + i * cell + cell / 2 - 3, 1);
      for (int j = 0; j < k; j++) {
        // Square root scale: the diagonal dwarfs the errors otherwise.
        double f = Math.sqrt((double) counts[i][j] / max);
        int shade = (int) Math.round(255 * (1 - f));
        g.setColor(i == j ? new Color(shade, shade, 255) : new Color(255, shade, shade));
        g.fillRect(left + j * cell, top + i * cell, cell, cell);
        g.setColor(f > 0.6 ? Color.WHITE : Color.BLACK);
        String c = Long.toString(counts[i][j]);
        if (textWidth(c, 1) + 4 <= cell) {
          text(g, c, left + j * cell + cell / 2 - textWidth(c, 1) / 2, top + i * cell + cell / 2 - 3, 1);
        }
      }
    }
    g.setColor(Color.GRAY);
    g.drawRect(left, top, k * cell, k * cell);
    g.dispose();
    write(img, file);
  }

  /**
   * A grid of grayscale images ({@code pixels[i]} holds {@code h * w} values in [0, 1]) drawn at
   * 2x, each with its caption below it.
   */
  static void imageGrid(Path file, String title, float[][] pixels, String[] captions, int h, int w, int columns)
      throws IOException {
    int n = pixels.length;
    int cols = Math.max(1, Math.min(columns, n));
    int rows = Math.max(1, (n + cols - 1) / cols);
    int scale = 2;
    int caption = 0;
    for (String c : captions) {
      caption = Math.max(caption, textWidth(c, 1));
    }
    int cellW = Math.max(w * scale, caption) + 10;
    int cellH = h * scale + 22;
    int width = cols * cellW + 10;
    int height = rows * cellH + 40;
    BufferedImage img = canvas(width, height);
    Graphics2D g = img.createGraphics();
    g.setColor(Color.BLACK);
    text(g, title, 10, 10, 2);
    for (int i = 0; i < n; i++) {
      int x0 = 10 + (i % cols) * cellW;
      int y0 = 34 + (i / cols) * cellH;
      for (int r = 0; r < h; r++) {
        for (int c = 0; c < w; c++) {
          float v = Math.max(0f, Math.min(1f, pixels[i][r * w + c]));
          int shade = Math.round(255 * (1 - v));
          g.setColor(new Color(shade, shade, shade));
          g.fillRect(x0 + c * scale, y0 + r * scale, scale, scale);
        }
      }
      g.setColor(Color.BLACK);
      text(g, captions[i], x0, y0 + h * scale + 5, 1);
    }
    g.dispose();
    write(img, file);
  }
}
