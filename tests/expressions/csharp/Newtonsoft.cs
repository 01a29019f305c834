// The subset of Newtonsoft.Json that the tests' policy expressions and runner use, under the real
// namespaces and type names (APIM allows Newtonsoft.Json.Linq's JToken, JObject, JArray, JValue,
// JProperty, JContainer, JTokenType, Newtonsoft.Json.Formatting and JsonConvert; see Context.cs for
// the source). Semantics follow Newtonsoft.Json 13: a missing property reads as null; a JSON null
// is a JValue of type Null; the last of duplicate property names wins; JToken.Parse refuses text
// after the value; the reader's MaxDepth is 64.
//
// Known difference: this reader is strict RFC 8259 (plus NaN, Infinity and -Infinity, which both
// Newtonsoft and Python's json accept). Newtonsoft also accepts comments, single-quoted strings,
// unquoted property names and raw control characters in strings; this reader refuses them, as the
// stand-in's Python gateway does, so the request table holds none of them.

using System;
using System.Collections;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Numerics;
using System.Text;

namespace Newtonsoft.Json
{
    public enum Formatting { None, Indented }

    public class JsonException : Exception
    {
        public JsonException(string message) : base(message) { }
    }

    public class JsonReaderException : JsonException
    {
        public int LineNumber { get; private set; }
        public int LinePosition { get; private set; }
        public string Path { get; private set; }

        public JsonReaderException(string message, int line, int position, string path)
            : base(message + " Path '" + path + "', line " + line + ", position " + position + ".")
        {
            LineNumber = line; LinePosition = position; Path = path;
        }
    }

    public static class JsonConvert
    {
        public static string SerializeObject(object value)
        {
            return Linq.JToken.FromObject(value).ToString(Formatting.None);
        }

        public static object DeserializeObject(string value)
        {
            return Linq.JToken.Parse(value);
        }
    }
}

namespace Newtonsoft.Json.Linq
{
    public enum JTokenType
    {
        None, Object, Array, Constructor, Property, Comment, Integer, Float, String, Boolean, Null,
        Undefined, Date, Raw, Bytes, Guid, Uri, TimeSpan
    }

    public abstract class JToken : IEnumerable<JToken>
    {
        public abstract JTokenType Type { get; }
        public JContainer Parent { get; internal set; }
        public virtual bool HasValues { get { return false; } }

        public virtual JToken this[object key]
        {
            get { throw new InvalidOperationException("Cannot access child value on " + GetType().FullName + "."); }
            set { throw new InvalidOperationException("Cannot set child value on " + GetType().FullName + "."); }
        }

        public virtual IEnumerable<JToken> Children() { return Enumerable.Empty<JToken>(); }
        public IEnumerator<JToken> GetEnumerator() { return Children().GetEnumerator(); }
        IEnumerator IEnumerable.GetEnumerator() { return GetEnumerator(); }

        public T Value<T>(object key)
        {
            JToken t = this[key];
            return t == null ? default(T) : t.ToObject<T>();
        }

        public T ToObject<T>()
        {
            Type type = typeof(T);
            if (typeof(JToken).IsAssignableFrom(type)) return (T)(object)this;
            var v = this as JValue;
            if (v == null) throw new ArgumentException("Can not convert " + Type + " to " + type.Name + ".");
            if (v.Value == null) return default(T);
            Type target = Nullable.GetUnderlyingType(type) ?? type;
            if (target == typeof(string)) return (T)(object)ToText(v);
            return (T)System.Convert.ChangeType(v.Value, target, CultureInfo.InvariantCulture);
        }

        public static JToken Parse(string json) { return JsonText.Read(json); }

        public static JToken FromObject(object value)
        {
            var token = value as JToken;
            if (token != null) return token;
            return new JValue(value);
        }

        public override string ToString() { return ToString(Formatting.Indented); }

        public string ToString(Formatting formatting)
        {
            var sb = new StringBuilder();
            JsonText.Write(this, sb, formatting == Formatting.Indented, 0);
            return sb.ToString();
        }

        internal static string ToText(JValue v)
        {
            if (v.Value == null) return null;
            if (v.Value is string) return (string)v.Value;
            if (v.Value is bool) return (bool)v.Value ? "True" : "False";
            var f = v.Value as IFormattable;
            return f != null ? f.ToString(null, CultureInfo.InvariantCulture) : v.Value.ToString();
        }

        static JValue Scalar(JToken t, string to)
        {
            var v = t as JValue;
            if (v == null) throw new ArgumentException("Can not convert " + (t == null ? "null" : t.Type.ToString()) + " to " + to + ".");
            return v;
        }

        public static explicit operator string(JToken t)
        {
            if (t == null) return null;
            var v = Scalar(t, "String");
            if (v.Type == JTokenType.Null) return null;
            return ToText(v);
        }

        public static explicit operator bool(JToken t)
        {
            var v = Scalar(t, "Boolean");
            if (v.Value is bool) return (bool)v.Value;
            if (v.Value is string) return bool.Parse((string)v.Value);
            throw new ArgumentException("Can not convert " + v.Type + " to Boolean.");
        }

        public static explicit operator long(JToken t)
        {
            var v = Scalar(t, "Int64");
            if (v.Value == null || v.Value is bool) throw new ArgumentException("Can not convert " + v.Type + " to Int64.");
            return System.Convert.ToInt64(v.Value is BigInteger ? (object)(long)(BigInteger)v.Value : v.Value, CultureInfo.InvariantCulture);
        }

        public static explicit operator int(JToken t) { return checked((int)(long)t); }

        public static explicit operator double(JToken t)
        {
            var v = Scalar(t, "Double");
            if (v.Value == null || v.Value is bool) throw new ArgumentException("Can not convert " + v.Type + " to Double.");
            return v.Value is BigInteger ? (double)(BigInteger)v.Value : System.Convert.ToDouble(v.Value, CultureInfo.InvariantCulture);
        }

        public static implicit operator JToken(string value) { return new JValue(value); }
        public static implicit operator JToken(bool value) { return new JValue(value); }
        public static implicit operator JToken(long value) { return new JValue(value); }
        public static implicit operator JToken(double value) { return new JValue(value); }
    }

    public abstract class JContainer : JToken
    {
        public override bool HasValues { get { return Count > 0; } }
        public abstract int Count { get; }
    }

    public class JValue : JToken
    {
        readonly JTokenType type;
        public object Value { get; private set; }

        public JValue(object value)
        {
            Value = value;
            if (value == null) type = JTokenType.Null;
            else if (value is string) type = JTokenType.String;
            else if (value is bool) type = JTokenType.Boolean;
            else if (value is long || value is int || value is BigInteger) type = JTokenType.Integer;
            else if (value is double || value is float || value is decimal) type = JTokenType.Float;
            else throw new ArgumentException("Could not determine JSON object type for type " + value.GetType().FullName + ".");
            if (value is int) Value = (long)(int)value;
        }

        public override JTokenType Type { get { return type; } }

        /// <summary>The value's text: a string as it is (unquoted), "" for null.</summary>
        public override string ToString() { return Value == null ? "" : ToText(this); }
    }

    public class JProperty : JContainer
    {
        public string Name { get; private set; }
        public JToken Value { get; set; }

        public JProperty(string name, JToken value) { Name = name; Value = value; }
        public override JTokenType Type { get { return JTokenType.Property; } }
        public override int Count { get { return 1; } }
        public override IEnumerable<JToken> Children() { return new[] { Value }; }
    }

    public class JObject : JContainer
    {
        readonly List<JProperty> properties = new List<JProperty>();

        public override JTokenType Type { get { return JTokenType.Object; } }
        public override int Count { get { return properties.Count; } }

        public new static JObject Parse(string json)
        {
            JToken t = JsonText.Read(json);
            var o = t as JObject;
            if (o == null) throw new JsonReaderException("Error reading JObject from JsonReader. Current JsonReader item is not an object: " + t.Type + ".", 1, 1, "");
            return o;
        }

        /// <summary>The property's value, or null when there is none.</summary>
        public JToken this[string propertyName]
        {
            get { JProperty p = Property(propertyName); return p == null ? null : p.Value; }
            set { Add(propertyName, value); }
        }

        public override JToken this[object key]
        {
            get
            {
                var name = key as string;
                if (name == null) throw new ArgumentException("Accessed JObject values with invalid key value: " + key + ". Object property name expected.");
                return this[name];
            }
            set { this[(string)key] = value; }
        }

        public JProperty Property(string name) { return properties.FirstOrDefault(p => p.Name == name); }
        public IEnumerable<JProperty> Properties() { return properties; }
        public override IEnumerable<JToken> Children() { return properties.Cast<JToken>(); }
        public bool ContainsKey(string name) { return Property(name) != null; }

        public bool TryGetValue(string name, out JToken value)
        {
            JProperty p = Property(name);
            value = p == null ? null : p.Value;
            return p != null;
        }

        /// <summary>Adds the property, or replaces the value of one of that name (the last wins).</summary>
        public void Add(string name, JToken value)
        {
            JToken v = value ?? new JValue(null);
            JProperty p = Property(name);
            if (p != null) { p.Value = v; return; }
            p = new JProperty(name, v) { Parent = this };
            v.Parent = p;
            properties.Add(p);
        }

        public bool Remove(string name) { return properties.RemoveAll(p => p.Name == name) > 0; }
    }

    public class JArray : JContainer
    {
        readonly List<JToken> items = new List<JToken>();

        public override JTokenType Type { get { return JTokenType.Array; } }
        public override int Count { get { return items.Count; } }

        public new static JArray Parse(string json)
        {
            JToken t = JsonText.Read(json);
            var a = t as JArray;
            if (a == null) throw new JsonReaderException("Error reading JArray from JsonReader. Current JsonReader item is not an array: " + t.Type + ".", 1, 1, "");
            return a;
        }

        public JToken this[int index] { get { return items[index]; } set { items[index] = value; } }

        public override JToken this[object key]
        {
            get
            {
                if (!(key is int)) throw new ArgumentException("Accessed JArray values with invalid key value: " + key + ". Int32 array index expected.");
                return items[(int)key];
            }
            set { items[(int)key] = value; }
        }

        public void Add(JToken item) { JToken v = item ?? new JValue(null); v.Parent = this; items.Add(v); }
        public override IEnumerable<JToken> Children() { return items; }
    }

    /// <summary>A strict JSON reader and a writer in Newtonsoft's layout.</summary>
    static class JsonText
    {
        public const int MaxDepth = 64;

        public static JToken Read(string text)
        {
            if (text == null) throw new ArgumentNullException("json");
            var r = new Reader(text);
            r.SkipSpace();
            JToken value = r.Value(0, "");
            r.SkipSpace();
            if (!r.AtEnd) throw r.Error("Additional text encountered after finished reading JSON content: " + r.Current + ".", "");
            return value;
        }

        sealed class Reader
        {
            readonly string s;
            int i;
            public Reader(string s) { this.s = s; }
            public bool AtEnd { get { return i >= s.Length; } }
            public char Current { get { return s[i]; } }

            public JsonReaderException Error(string message, string path)
            {
                int line = 1, pos = 0;
                for (int k = 0; k < i && k < s.Length; k++) { if (s[k] == '\n') { line++; pos = 0; } else pos++; }
                return new JsonReaderException(message, line, pos, path);
            }

            public void SkipSpace()
            {
                while (i < s.Length && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n')) i++;
            }

            bool Take(string word)
            {
                if (string.CompareOrdinal(s, i, word, 0, word.Length) != 0) return false;
                i += word.Length;
                return true;
            }

            public JToken Value(int depth, string path)
            {
                if (AtEnd) throw Error("Unexpected end of content while loading JToken.", path);
                char c = s[i];
                if (c == '{' || c == '[')
                {
                    if (depth + 1 > MaxDepth) throw Error("The reader's MaxDepth of " + MaxDepth + " has been exceeded.", path);
                    return c == '{' ? (JToken)Object(depth + 1, path) : Array(depth + 1, path);
                }
                if (c == '"') return new JValue(String(path));
                if (Take("true")) return new JValue(true);
                if (Take("false")) return new JValue(false);
                if (Take("null")) return new JValue(null);
                if (Take("NaN")) return new JValue(double.NaN);
                if (Take("Infinity")) return new JValue(double.PositiveInfinity);
                if (Take("-Infinity")) return new JValue(double.NegativeInfinity);
                if (c == '-' || (c >= '0' && c <= '9')) return Number(path);
                throw Error("Unexpected character encountered while parsing value: " + c + ".", path);
            }

            JObject Object(int depth, string path)
            {
                var o = new JObject();
                i++;
                SkipSpace();
                if (!AtEnd && s[i] == '}') { i++; return o; }
                while (true)
                {
                    SkipSpace();
                    if (AtEnd || s[i] != '"') throw Error("Invalid property identifier character.", path);
                    string name = String(path);
                    string at = path.Length == 0 ? name : path + "." + name;
                    SkipSpace();
                    if (AtEnd || s[i] != ':') throw Error("Invalid character after parsing property name.", at);
                    i++;
                    SkipSpace();
                    o.Add(name, Value(depth, at));
                    SkipSpace();
                    if (AtEnd) throw Error("Unexpected end of content while loading JObject.", at);
                    if (s[i] == ',') { i++; continue; }
                    if (s[i] == '}') { i++; return o; }
                    throw Error("After parsing a value an unexpected character was encountered: " + s[i] + ".", at);
                }
            }

            JArray Array(int depth, string path)
            {
                var a = new JArray();
                i++;
                SkipSpace();
                if (!AtEnd && s[i] == ']') { i++; return a; }
                while (true)
                {
                    SkipSpace();
                    string at = path + "[" + a.Count + "]";
                    a.Add(Value(depth, at));
                    SkipSpace();
                    if (AtEnd) throw Error("Unexpected end of content while loading JArray.", at);
                    if (s[i] == ',') { i++; continue; }
                    if (s[i] == ']') { i++; return a; }
                    throw Error("After parsing a value an unexpected character was encountered: " + s[i] + ".", at);
                }
            }

            string String(string path)
            {
                var sb = new StringBuilder();
                i++;
                while (true)
                {
                    if (AtEnd) throw Error("Unterminated string. Expected delimiter: \".", path);
                    char c = s[i++];
                    if (c == '"') return sb.ToString();
                    if (c < ' ') throw Error("Invalid control character in a string.", path);
                    if (c != '\\') { sb.Append(c); continue; }
                    if (AtEnd) throw Error("Unterminated string. Expected delimiter: \".", path);
                    char e = s[i++];
                    switch (e)
                    {
                        case '"': sb.Append('"'); break;
                        case '\\': sb.Append('\\'); break;
                        case '/': sb.Append('/'); break;
                        case 'b': sb.Append('\b'); break;
                        case 'f': sb.Append('\f'); break;
                        case 'n': sb.Append('\n'); break;
                        case 'r': sb.Append('\r'); break;
                        case 't': sb.Append('\t'); break;
                        case 'u':
                            int code;
                            if (i + 4 > s.Length || !int.TryParse(s.Substring(i, 4), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out code))
                                throw Error("Invalid Unicode escape sequence.", path);
                            sb.Append((char)code);
                            i += 4;
                            break;
                        default: throw Error("Bad JSON escape sequence: \\" + e + ".", path);
                    }
                }
            }

            JValue Number(string path)
            {
                int start = i;
                if (s[i] == '-') i++;
                if (AtEnd || !char.IsDigit(s[i]) || s[i] > '9') throw Error("Input string is not a valid number.", path);
                if (s[i] == '0') i++; else while (!AtEnd && s[i] >= '0' && s[i] <= '9') i++;
                bool integer = true;
                if (!AtEnd && s[i] == '.')
                {
                    integer = false; i++;
                    if (AtEnd || s[i] < '0' || s[i] > '9') throw Error("Input string is not a valid number.", path);
                    while (!AtEnd && s[i] >= '0' && s[i] <= '9') i++;
                }
                if (!AtEnd && (s[i] == 'e' || s[i] == 'E'))
                {
                    integer = false; i++;
                    if (!AtEnd && (s[i] == '+' || s[i] == '-')) i++;
                    if (AtEnd || s[i] < '0' || s[i] > '9') throw Error("Input string is not a valid number.", path);
                    while (!AtEnd && s[i] >= '0' && s[i] <= '9') i++;
                }
                string text = s.Substring(start, i - start);
                if (!integer) return new JValue(double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture));
                long l;
                if (long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out l)) return new JValue(l);
                return new JValue(BigInteger.Parse(text, CultureInfo.InvariantCulture));
            }
        }

        public static void Write(JToken t, StringBuilder sb, bool indent, int level)
        {
            string nl = indent ? "\r\n" + new string(' ', 2 * (level + 1)) : "";
            string end = indent ? "\r\n" + new string(' ', 2 * level) : "";
            var o = t as JObject;
            var a = t as JArray;
            if (o != null)
            {
                sb.Append('{');
                bool first = true;
                foreach (JProperty p in o.Properties())
                {
                    sb.Append(first ? "" : ",").Append(nl);
                    first = false;
                    Quote(p.Name, sb);
                    sb.Append(indent ? ": " : ":");
                    Write(p.Value, sb, indent, level + 1);
                }
                sb.Append(first ? "" : end).Append('}');
                return;
            }
            if (a != null)
            {
                sb.Append('[');
                bool first = true;
                foreach (JToken item in a.Children())
                {
                    sb.Append(first ? "" : ",").Append(nl);
                    first = false;
                    Write(item, sb, indent, level + 1);
                }
                sb.Append(first ? "" : end).Append(']');
                return;
            }
            var v = (JValue)t;
            if (v.Type == JTokenType.String) { Quote((string)v.Value, sb); return; }
            if (v.Type == JTokenType.Null) { sb.Append("null"); return; }
            if (v.Type == JTokenType.Boolean) { sb.Append((bool)v.Value ? "true" : "false"); return; }
            sb.Append(JToken.ToText(v));
        }

        static void Quote(string text, StringBuilder sb)
        {
            sb.Append('"');
            foreach (char c in text)
            {
                if (c == '"') sb.Append("\\\"");
                else if (c == '\\') sb.Append("\\\\");
                else if (c == '\n') sb.Append("\\n");
                else if (c == '\r') sb.Append("\\r");
                else if (c == '\t') sb.Append("\\t");
                else if (c < ' ') sb.Append("\\u").Append(((int)c).ToString("x4"));
                else sb.Append(c);
            }
            sb.Append('"');
        }
    }
}
