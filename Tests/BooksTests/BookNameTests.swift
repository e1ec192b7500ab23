import Books
import Sodium
import Testing

@Suite("BookName") struct BookNameTests {
    @Test func namesJoinAuthorReaderAndTask() throws {
        let name = try BookName.make(author: "bob", reader: "ana", task: "0f1e")
        #expect(name == "bob-ana-0f1e")
        let parts = try #require(BookName.parts(of: name))
        #expect(parts.author == "bob" && parts.reader == "ana" && parts.task == "0f1e")
        #expect(BookName.parts(of: "a-b") == nil)
        #expect(BookName.parts(of: "a--c") == nil)
        #expect(throws: BooksError(.invalidName, "")) { try BookName.make(author: "b-b", reader: "ana", task: "t") }
        #expect(throws: BooksError(.invalidName, "")) { try BookName.make(author: "bob", reader: "", task: "t") }
        #expect(throws: BooksError(.invalidName, "")) { try BookName.make(author: String(repeating: "x", count: 300), reader: "a", task: "t") }
    }

    @Test func derivedKeysAreStableAndDifferBetweenNamesAndSecrets() throws {
        let a1 = try BookName.keyPair(masterSecret: masterSecret(1), name: "bob-ana-task")
        let a2 = try BookName.keyPair(masterSecret: masterSecret(1), name: "bob-ana-task")
        let otherName = try BookName.keyPair(masterSecret: masterSecret(1), name: "ana-bob-task")
        let otherSecret = try BookName.keyPair(masterSecret: masterSecret(2), name: "bob-ana-task")
        #expect(a1.publicKey == a2.publicKey)
        #expect(a1.secretKey == a2.secretKey)
        #expect(a1.publicKey != otherName.publicKey)
        #expect(a1.publicKey != otherSecret.publicKey)
        #expect(otherName.publicKey != otherSecret.publicKey)
        #expect(throws: BooksError(.wrongMasterSecret, "")) { try BookName.keyPair(masterSecret: SecretBytes(randomCount: 16), name: "x") }
    }
}
