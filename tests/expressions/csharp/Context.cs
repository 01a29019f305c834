// A typed model of the `context` variable of Azure API Management policy expressions, with a fake
// implementation for running compiled expressions offline.
//
// Source: Microsoft, "API Management policy expressions", section "Context variable"
//   https://learn.microsoft.com/azure/api-management/api-management-policy-expressions#ContextVariables
//   (text read from MicrosoftDocs/azure-docs, articles/api-management/api-management-policy-expressions.md,
//   commit 017654d14eb78a81d68ea84640b468bcb7fa96d3).
// Every interface member below is one the reference lists, with the type it gives. Expressions see
// only the interfaces (the `context` parameter is an IContext); the Fake* classes are for the runner.
// The interface names are ours: the reference names the members and their types, not the interfaces
// that hold them (it names IApi, IUrl, IMessageBody, IGroup, IUserIdentity,
// ISubscriptionKeyParameterNames, IPrivateEndpointConnection; those names are kept).

using System;
using System.Collections.Generic;
using System.Linq;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Xml.Linq;
using Newtonsoft.Json.Linq;

namespace PolicyContext
{
    public interface IContext
    {
        IContextApi Api { get; }
        IDeployment Deployment { get; }
        TimeSpan Elapsed { get; }
        ILastError LastError { get; }
        IOperation Operation { get; }
        IProduct Product { get; }
        IRequest Request { get; }
        Guid RequestId { get; }
        IResponse Response { get; }
        ISubscription Subscription { get; }
        DateTime Timestamp { get; }
        bool Tracing { get; }
        IUser User { get; }
        IReadOnlyDictionary<string, object> Variables { get; }
        void Trace(string message);
    }

    public interface IApi
    {
        string Id { get; }
        string Name { get; }
        string Path { get; }
        IEnumerable<string> Protocols { get; }
        IUrl ServiceUrl { get; }
        ISubscriptionKeyParameterNames SubscriptionKeyParameterNames { get; }
    }

    /// <summary>context.Api: IApi plus the revision members.</summary>
    public interface IContextApi : IApi
    {
        bool IsCurrentRevision { get; }
        string Revision { get; }
        string Version { get; }
    }

    public interface IDeployment
    {
        string GatewayId { get; }
        string Region { get; }
        string ServiceName { get; }
        IReadOnlyDictionary<string, X509Certificate2> Certificates { get; }
    }

    public interface ILastError
    {
        string Source { get; }
        string Reason { get; }
        string Message { get; }
        string Scope { get; }
        string Section { get; }
        string Path { get; }
        string PolicyId { get; }
    }

    public interface IOperation
    {
        string Id { get; }
        string Method { get; }
        string Name { get; }
        string UrlTemplate { get; }
    }

    public enum ProductState { NotPublished, Published }

    public interface IProduct
    {
        IEnumerable<IApi> Apis { get; }
        bool ApprovalRequired { get; }
        IEnumerable<IGroup> Groups { get; }
        string Id { get; }
        string Name { get; }
        ProductState State { get; }
        int? SubscriptionLimit { get; }
        bool SubscriptionRequired { get; }
    }

    public interface IRequest
    {
        /// <summary>null when the request has no body.</summary>
        IMessageBody Body { get; }
        X509Certificate2 Certificate { get; }
        IReadOnlyDictionary<string, string[]> Headers { get; }
        string IpAddress { get; }
        IReadOnlyDictionary<string, string> MatchedParameters { get; }
        string Method { get; }
        IUrl OriginalUrl { get; }
        IUrl Url { get; }
        /// <summary>null when the request does not come from a private endpoint connection.</summary>
        IPrivateEndpointConnection PrivateEndpointConnection { get; }
    }

    public interface IResponse
    {
        IMessageBody Body { get; }
        IReadOnlyDictionary<string, string[]> Headers { get; }
        int StatusCode { get; }
        string StatusReason { get; }
    }

    public interface ISubscription
    {
        DateTime CreatedDate { get; }
        DateTime? EndDate { get; }
        string Id { get; }
        string Key { get; }
        string Name { get; }
        string PrimaryKey { get; }
        string SecondaryKey { get; }
        DateTime? StartDate { get; }
    }

    public interface IUser
    {
        string Email { get; }
        string FirstName { get; }
        IEnumerable<IGroup> Groups { get; }
        string Id { get; }
        IEnumerable<IUserIdentity> Identities { get; }
        string LastName { get; }
        string Note { get; }
        DateTime RegistrationDate { get; }
    }

    public interface IGroup
    {
        string Id { get; }
        string Name { get; }
    }

    public interface IMessageBody
    {
        /// <summary>T: string, byte[], JObject, JToken, JArray, XNode, XElement, XDocument. Without
        /// preserveContent the body is consumed: a second read finds it gone.</summary>
        T As<T>(bool preserveContent = false);
    }

    public interface IPrivateEndpointConnection
    {
        string Name { get; }
        string GroupId { get; }
        string MemberName { get; }
    }

    public interface IUrl
    {
        string Host { get; }
        string Path { get; }
        int Port { get; }
        IReadOnlyDictionary<string, string[]> Query { get; }
        string QueryString { get; }
        string Scheme { get; }
    }

    public interface IUserIdentity
    {
        string Id { get; }
        string Provider { get; }
    }

    public interface ISubscriptionKeyParameterNames
    {
        string Header { get; }
        string Query { get; }
    }

    public class BasicAuthCredentials
    {
        public string Password { get; internal set; }
        public string UserId { get; internal set; }
    }

    public class Jwt
    {
        public string Algorithm { get; internal set; }
        public IEnumerable<string> Audiences { get; internal set; }
        public IReadOnlyDictionary<string, string[]> Claims { get; internal set; }
        public DateTime? ExpirationTime { get; internal set; }
        public string Id { get; internal set; }
        public string Issuer { get; internal set; }
        public DateTime? IssuedAt { get; internal set; }
        public DateTime? NotBefore { get; internal set; }
        public string Subject { get; internal set; }
        public string Type { get; internal set; }
    }

    /// <summary>The reference's methods on the context's dictionaries and on strings and bytes.</summary>
    public static class PolicyExtensions
    {
        /// <summary>Headers, query parameters, claims: comma-separated values, or defaultValue.</summary>
        public static string GetValueOrDefault(this IReadOnlyDictionary<string, string[]> values, string name,
                                               string defaultValue)
        {
            string[] found;
            return values.TryGetValue(name, out found) && found != null ? string.Join(",", found) : defaultValue;
        }

        /// <summary>The variable cast to T, or defaultValue when absent; throws when the type does not match.</summary>
        public static T GetValueOrDefault<T>(this IReadOnlyDictionary<string, object> variables, string name,
                                             T defaultValue)
        {
            object found;
            if (!variables.TryGetValue(name, out found)) return defaultValue;
            return (T)found;  // InvalidCastException when the variable holds another type
        }

        public static BasicAuthCredentials AsBasic(this string input)
        {
            BasicAuthCredentials result;
            return TryParseBasic(input, out result) ? result : null;
        }

        public static bool TryParseBasic(this string input, out BasicAuthCredentials result)
        {
            result = null;
            if (input == null || !input.StartsWith("Basic ", StringComparison.OrdinalIgnoreCase)) return false;
            try
            {
                string text = Encoding.UTF8.GetString(Convert.FromBase64String(input.Substring(6).Trim()));
                int colon = text.IndexOf(':');
                if (colon < 0) return false;
                result = new BasicAuthCredentials { UserId = text.Substring(0, colon), Password = text.Substring(colon + 1) };
                return true;
            }
            catch (FormatException) { return false; }
        }

        public static Jwt AsJwt(this string input)
        {
            Jwt result;
            return TryParseJwt(input, out result) ? result : null;
        }

        public static bool TryParseJwt(this string input, out Jwt result)
        {
            result = null;
            if (input == null) return false;
            string token = input.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) ? input.Substring(7) : input;
            string[] parts = token.Trim().Split('.');
            if (parts.Length != 3) return false;
            try
            {
                JObject header = JObject.Parse(Base64Url(parts[0]));
                JObject payload = JObject.Parse(Base64Url(parts[1]));
                var claims = new Dictionary<string, string[]>();
                foreach (JProperty p in payload.Properties())
                    claims[p.Name] = p.Value.Type == JTokenType.Array
                        ? ((JArray)p.Value).Select(v => v.ToString()).ToArray() : new[] { p.Value.ToString() };
                Func<string, DateTime?> time = n => payload[n] == null ? (DateTime?)null
                    : new DateTime(1970, 1, 1, 0, 0, 0, DateTimeKind.Utc).AddSeconds((double)payload[n]);
                string[] aud;
                result = new Jwt
                {
                    Algorithm = (string)header["alg"], Type = (string)header["typ"], Claims = claims,
                    Audiences = claims.TryGetValue("aud", out aud) ? aud : new string[0],
                    ExpirationTime = time("exp"), IssuedAt = time("iat"), NotBefore = time("nbf"),
                    Id = (string)payload["jti"], Issuer = (string)payload["iss"], Subject = (string)payload["sub"],
                };
                return true;
            }
            catch (Exception) { return false; }
        }

        static string Base64Url(string part)
        {
            string s = part.Replace('-', '+').Replace('_', '/');
            return Encoding.UTF8.GetString(Convert.FromBase64String(s.PadRight(s.Length + (4 - s.Length % 4) % 4, '=')));
        }

        public static byte[] Encrypt(this byte[] input, string alg, byte[] key, byte[] iv)
        {
            using (var a = SymmetricAlgorithm.Create(alg)) return Encrypt(input, a, key, iv);
        }

        public static byte[] Encrypt(this byte[] input, SymmetricAlgorithm alg)
        {
            using (var t = alg.CreateEncryptor()) return t.TransformFinalBlock(input, 0, input.Length);
        }

        public static byte[] Encrypt(this byte[] input, SymmetricAlgorithm alg, byte[] key, byte[] iv)
        {
            using (var t = alg.CreateEncryptor(key, iv)) return t.TransformFinalBlock(input, 0, input.Length);
        }

        public static byte[] Decrypt(this byte[] input, string alg, byte[] key, byte[] iv)
        {
            using (var a = SymmetricAlgorithm.Create(alg)) return Decrypt(input, a, key, iv);
        }

        public static byte[] Decrypt(this byte[] input, SymmetricAlgorithm alg)
        {
            using (var t = alg.CreateDecryptor()) return t.TransformFinalBlock(input, 0, input.Length);
        }

        public static byte[] Decrypt(this byte[] input, SymmetricAlgorithm alg, byte[] key, byte[] iv)
        {
            using (var t = alg.CreateDecryptor(key, iv)) return t.TransformFinalBlock(input, 0, input.Length);
        }

        public static bool VerifyNoRevocation(this X509Certificate2 input)
        {
            using (var chain = new X509Chain())
            {
                chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                return chain.Build(input);
            }
        }
    }

}

// ---------------------------------------------------------------------------------------------
// The fake: plain values, filled by the runner from a request of the table. Outside PolicyContext,
// so the allowed-types check refuses an expression that reaches for it.

namespace PolicyRunner
{
    using PolicyContext;


    public class FakeUrl : IUrl
    {
        public string Host { get; set; } = "contoso-apim.azure-api.net";
        public string Path { get; set; } = "/";
        public int Port { get; set; } = 443;
        public IReadOnlyDictionary<string, string[]> Query { get; set; } =
            new Dictionary<string, string[]>(StringComparer.Ordinal);
        public string QueryString { get; set; } = "";
        public string Scheme { get; set; } = "https";
    }

    public class FakeBody : IMessageBody
    {
        readonly string text;
        bool consumed;

        public FakeBody(string text) { this.text = text; }

        public T As<T>(bool preserveContent = false)
        {
            if (consumed) throw new InvalidOperationException("The message body was read without preserveContent and is gone.");
            if (!preserveContent) consumed = true;
            object value;
            Type t = typeof(T);
            if (t == typeof(string)) value = text;
            else if (t == typeof(byte[])) value = Encoding.UTF8.GetBytes(text);
            else if (t == typeof(JObject)) value = JObject.Parse(text);
            else if (t == typeof(JArray)) value = JArray.Parse(text);
            else if (t == typeof(JToken)) value = JToken.Parse(text);
            else if (t == typeof(XDocument)) value = XDocument.Parse(text);
            else if (t == typeof(XElement) || t == typeof(XNode)) value = XElement.Parse(text);
            else throw new NotSupportedException("As<" + t.FullName + ">: the body reads as string, byte[], JObject, JToken, JArray, XNode, XElement or XDocument only.");
            return (T)value;
        }
    }

    public class FakeRequest : IRequest
    {
        public IMessageBody Body { get; set; }
        public X509Certificate2 Certificate { get; set; }
        public IReadOnlyDictionary<string, string[]> Headers { get; set; } =
            new Dictionary<string, string[]>(StringComparer.OrdinalIgnoreCase);
        public string IpAddress { get; set; } = "203.0.113.7";
        public IReadOnlyDictionary<string, string> MatchedParameters { get; set; } =
            new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        public string Method { get; set; } = "GET";
        public IUrl OriginalUrl { get; set; } = new FakeUrl();
        public IUrl Url { get; set; } = new FakeUrl();
        public IPrivateEndpointConnection PrivateEndpointConnection { get; set; }
    }

    public class FakeResponse : IResponse
    {
        public IMessageBody Body { get; set; }
        public IReadOnlyDictionary<string, string[]> Headers { get; set; } =
            new Dictionary<string, string[]>(StringComparer.OrdinalIgnoreCase);
        public int StatusCode { get; set; } = 200;
        public string StatusReason { get; set; } = "OK";
    }

    public class FakeKeyNames : ISubscriptionKeyParameterNames
    {
        public string Header { get; set; } = "api-key";
        public string Query { get; set; } = "api-key";
    }

    public class FakeApi : IContextApi
    {
        public string Id { get; set; } = "ai-api";
        public string Name { get; set; } = "ai-api";
        public string Path { get; set; } = "ai";
        public IEnumerable<string> Protocols { get; set; } = new[] { "https" };
        public IUrl ServiceUrl { get; set; } = new FakeUrl { Host = "contoso.openai.azure.com", Path = "/openai" };
        public ISubscriptionKeyParameterNames SubscriptionKeyParameterNames { get; set; } = new FakeKeyNames();
        public bool IsCurrentRevision { get; set; } = true;
        public string Revision { get; set; } = "1";
        public string Version { get; set; } = "";
    }

    public class FakeDeployment : IDeployment
    {
        public string GatewayId { get; set; } = "managed";
        public string Region { get; set; } = "West Europe";
        public string ServiceName { get; set; } = "contoso-apim";
        public IReadOnlyDictionary<string, X509Certificate2> Certificates { get; set; } =
            new Dictionary<string, X509Certificate2>();
    }

    public class FakeOperation : IOperation
    {
        public string Id { get; set; } = "op";
        public string Method { get; set; } = "POST";
        public string Name { get; set; } = "op";
        public string UrlTemplate { get; set; } = "/";
    }

    public class FakeSubscription : ISubscription
    {
        public DateTime CreatedDate { get; set; } = new DateTime(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc);
        public DateTime? EndDate { get; set; }
        public string Id { get; set; } = "sub-1";
        public string Key { get; set; } = "key-1";
        public string Name { get; set; } = "sub-1";
        public string PrimaryKey { get; set; } = "key-1";
        public string SecondaryKey { get; set; } = "key-2";
        public DateTime? StartDate { get; set; }
    }

    public class FakeGroup : IGroup
    {
        public string Id { get; set; } = "developers";
        public string Name { get; set; } = "Developers";
    }

    public class FakeUser : IUser
    {
        public string Email { get; set; } = "dev@contoso.example";
        public string FirstName { get; set; } = "Dev";
        public IEnumerable<IGroup> Groups { get; set; } = new IGroup[] { new FakeGroup() };
        public string Id { get; set; } = "user-1";
        public IEnumerable<IUserIdentity> Identities { get; set; } = new IUserIdentity[0];
        public string LastName { get; set; } = "Eloper";
        public string Note { get; set; } = "";
        public DateTime RegistrationDate { get; set; } = new DateTime(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc);
    }

    public class FakeProduct : IProduct
    {
        public IEnumerable<IApi> Apis { get; set; } = new IApi[0];
        public bool ApprovalRequired { get; set; }
        public IEnumerable<IGroup> Groups { get; set; } = new IGroup[0];
        public string Id { get; set; } = "ai-consumers";
        public string Name { get; set; } = "AI consumers";
        public ProductState State { get; set; } = ProductState.Published;
        public int? SubscriptionLimit { get; set; }
        public bool SubscriptionRequired { get; set; } = true;
    }

    public class FakeContext : IContext
    {
        public readonly Dictionary<string, object> VariableStore = new Dictionary<string, object>(StringComparer.Ordinal);
        public readonly List<string> Traces = new List<string>();

        public IContextApi Api { get; set; } = new FakeApi();
        public IDeployment Deployment { get; set; } = new FakeDeployment();
        public TimeSpan Elapsed { get; set; } = TimeSpan.FromMilliseconds(3);
        public ILastError LastError { get; set; }
        public IOperation Operation { get; set; } = new FakeOperation();
        public IProduct Product { get; set; } = new FakeProduct();
        public IRequest Request { get; set; } = new FakeRequest();
        public Guid RequestId { get; set; } = Guid.NewGuid();
        public IResponse Response { get; set; }
        public ISubscription Subscription { get; set; } = new FakeSubscription();
        public DateTime Timestamp { get; set; } = DateTime.UtcNow;
        public bool Tracing { get; set; }
        public IUser User { get; set; } = new FakeUser();
        public IReadOnlyDictionary<string, object> Variables { get { return VariableStore; } }
        public void Trace(string message) { Traces.Add(message); }
    }
}
