package id.smartmarket.judge;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.ObjectInputStream;
import java.io.ObjectOutputStream;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.List;

/**
 * How a key's state is stored: its points as a compact binary list, its held prices (rare) as
 * the serialized values of their output rows.
 */
final class StateCodec {
  private StateCodec() {}

  interface Writer<P> {
    void write(DataOutputStream out, P point) throws IOException;
  }

  interface Reader<P> {
    P read(DataInputStream in) throws IOException;
  }

  static <P> byte[] points(List<P> points, Writer<P> writer) {
    try {
      ByteArrayOutputStream bytes = new ByteArrayOutputStream();
      DataOutputStream out = new DataOutputStream(bytes);
      out.writeInt(points.size());
      for (P p : points) {
        writer.write(out, p);
      }
      out.flush();
      return bytes.toByteArray();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  static <P> List<P> points(byte[] blob, Reader<P> reader) {
    List<P> out = new ArrayList<>();
    if (blob == null) {
      return out;
    }
    try (DataInputStream in = new DataInputStream(new ByteArrayInputStream(blob))) {
      int n = in.readInt();
      for (int i = 0; i < n; i++) {
        out.add(reader.read(in));
      }
      return out;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  static void writeString(DataOutputStream out, String s) throws IOException {
    out.writeBoolean(s != null);
    if (s != null) {
      out.writeUTF(s);
    }
  }

  static String readString(DataInputStream in) throws IOException {
    return in.readBoolean() ? in.readUTF() : null;
  }

  static final Writer<PricePoint> PRICE_WRITER =
      (out, p) -> {
        writeString(out, p.group);
        writeString(out, p.commodity);
        writeString(out, p.market);
        out.writeLong(p.sec);
        out.writeInt(p.day);
        out.writeDouble(p.price);
        out.writeUTF(p.eventId);
      };

  static final Reader<PricePoint> PRICE_READER =
      in ->
          new PricePoint(
              readString(in), readString(in), readString(in), in.readLong(), in.readInt(),
              in.readDouble(), in.readUTF());

  static final Writer<SensorPoint> SENSOR_WRITER =
      (out, p) -> {
        writeString(out, p.market);
        writeString(out, p.device);
        writeString(out, p.metric);
        out.writeLong(p.sec);
        out.writeDouble(p.value);
        out.writeUTF(p.eventId);
      };

  static final Reader<SensorPoint> SENSOR_READER =
      in ->
          new SensorPoint(
              readString(in), readString(in), readString(in), in.readLong(), in.readDouble(),
              in.readUTF());

  static byte[] rows(List<Object[]> rows) {
    try {
      ByteArrayOutputStream bytes = new ByteArrayOutputStream();
      try (ObjectOutputStream out = new ObjectOutputStream(bytes)) {
        out.writeObject(new ArrayList<>(rows));
      }
      return bytes.toByteArray();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  @SuppressWarnings("unchecked")
  static List<Object[]> rows(byte[] blob) {
    if (blob == null) {
      return new ArrayList<>();
    }
    try (ObjectInputStream in = new ObjectInputStream(new ByteArrayInputStream(blob))) {
      return (List<Object[]>) in.readObject();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (ClassNotFoundException e) {
      throw new IllegalStateException(e);
    }
  }
}
